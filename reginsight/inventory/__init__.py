"""The inventory layer: the facts model (:mod:`._facts`), one reachability
(:mod:`._reach`), the crawl that gathers facts, and the frames built from them
(:mod:`._assemble`, :mod:`._frames`, :mod:`._inventory`). The only bridge from the
client to pandas."""
