"""The service side of the runtime: what runs inside each service process around the plugin."""
