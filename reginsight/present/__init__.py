"""The presentation layer: matplotlib plots, the ipywidgets explorer and the HTML
report. Presentation only: nothing here talks to a registry except the explorer's
confirmed delete button, which calls the ops layer's ``apply_cleanup``."""
