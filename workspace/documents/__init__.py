"""Co-editing's domain: each file is a Yjs document (pycrdt/Yrs) whose updates are stored in the database.

`store` loads documents (snapshot + later updates), applies and stores editors' updates under a per-document lock,
turns REST writes into updates, and keeps `project_files` (content, size, version) equal to the document's text in
the same transaction. `compaction` merges stored updates into the snapshot (an RQ job). `crdt` is the pycrdt glue.
Nothing here knows about sockets: it announces through `workspace.events` (`document_changed`,
`document_edited`), and the realtime layer relays.
"""
