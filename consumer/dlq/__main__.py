"""``python -m consumer.dlq``: the same as ``segstream-dlq``."""

from consumer.dlq.cli import main

if __name__ == "__main__":
    main()
