"""The registry layer: the ``Registry`` client (the only I/O shell) over httpx, its
auth and transport, and below them the sans-I/O protocol core (:mod:`.protocol`),
manifests, references, digests and hosts. Modules import each other directly; this
package file imports nothing, so no import goes in a circle through it."""
