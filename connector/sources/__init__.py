"""Live links to national databases: sources.yaml and the incremental sync."""
