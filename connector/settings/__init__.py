"""What admins edit: connector.yaml and the one reader of admin-edited YAML."""
