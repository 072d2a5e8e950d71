"""Infrastructure: deployment files and the local stand-ins (infra/local)."""
