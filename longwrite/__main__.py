"""`python -m longwrite` is the same as the `longwrite` command."""

from longwrite.cli.app import main

if __name__ == "__main__":
    main()
