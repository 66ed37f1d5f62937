"""The presentation layer: matplotlib plots, the ipywidgets explorer and the HTML
report. Presentation only: nothing here talks to a registry itself. The explorer's
confirmed delete buttons call the ops layer's ``apply_cleanup``, and its Refresh calls
the callable it was given (by default a crawl of the registry again, or a scan of the
storage again, through the inventory layer)."""
