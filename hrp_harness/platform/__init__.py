"""The platform: the embedded cluster and its controllers, deploy and apply, configuration and its templates, TLS, passwords, PgBouncer, inputs."""
