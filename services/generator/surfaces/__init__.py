"""Other platforms' APIs over imagegen's own generator: Recoup's and OpenAI's Images API."""
