"""What is printed or stored never carries a password: the one URL scrubber.

A server URL may carry credentials (`http://alice:PASSWORD@host/v1`, for a proxy that wants
basic auth). The client needs them; nothing else does. Every URL that is printed (errors,
notes, `doctor`) or stored (the run log's options and errors) goes through `public_url`, and
every line said on stderr or stored as an error goes through `scrub`, which drops the
`user:password@` part of any URL inside a text (an error from the HTTP client may quote the
URL it was given). Light on purpose: `longwrite.errors` imports it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://userinfo@ : the userinfo part (no space, slash or @ inside) is what goes
USERINFO = r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@?#]+@"


def scrub(text: str) -> str:
    """`text` with the `user:password@` part of every URL in it removed.

    >>> scrub("cannot reach http://alice:s3cret@gpu1:8000/v1: refused")
    'cannot reach http://gpu1:8000/v1: refused'
    """
    return re.sub(USERINFO, r"\1", text) if "@" in text else text  # (re caches the pattern)


def public_url(url: str | None) -> str | None:
    """`url` without a user:password part (None stays None).

    >>> public_url("https://bob:pw@example.org:8443/v1"), public_url("http://h:1/v1")
    ('https://example.org:8443/v1', 'http://h:1/v1')
    """
    if not url:
        return url
    if "://" not in url:  # host:port as given on the command line
        return url.rsplit("@", 1)[-1]
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urllib can read: drop whatever looks like credentials
        return scrub(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
