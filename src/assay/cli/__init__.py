"""The command line: thin commands that parse options into typed configs and call the layers."""
