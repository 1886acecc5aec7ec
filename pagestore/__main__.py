"""``python -m pagestore``: the same command as the ``pagestore`` console script."""
from .cli import main

if __name__ == "__main__":
    main()
