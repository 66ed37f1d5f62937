"""The operations layer: copy, delete a tag, plan a cleanup (pure) and apply it
(a dry run unless told otherwise)."""
