"""Providers: who actually computes a method's answer (local, fake, bedrock, openai)."""
