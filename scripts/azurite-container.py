#!/usr/bin/env python3
"""Creates a blob container in Azurite with the development account's shared key.

usage: azurite-container.py ACCOUNT_URL CONTAINER
(ACCOUNT_URL like http://127.0.0.1:10000/devstoreaccount1). An existing container is fine.
"""
import base64, datetime, hashlib, hmac, sys, urllib.error, urllib.request

# The well-known key of Azurite's development account (public, in Microsoft's docs).
ACCOUNT = "devstoreaccount1"
KEY = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
VERSION = "2021-08-06"

url, container = sys.argv[1].rstrip("/"), sys.argv[2]
date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
# The verb, eleven standard headers (Content-Length empty for 0; urllib sends a
# Content-Type with a body, so we name one), then the canonical headers and resource;
# path-style emulator URLs name the account twice.
standard = ["", "", "", "", "application/octet-stream", "", "", "", "", "", ""]
to_sign = "PUT\n" + "\n".join(standard) + f"\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
signature = base64.b64encode(hmac.new(KEY, to_sign.encode(), hashlib.sha256).digest()).decode()
request = urllib.request.Request(
    f"{url}/{container}?restype=container",
    method="PUT",
    data=b"",
    headers={
        "x-ms-date": date,
        "x-ms-version": VERSION,
        "Content-Type": "application/octet-stream",
        "Authorization": f"SharedKey {ACCOUNT}:{signature}",
    },
)
try:
    urllib.request.urlopen(request)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: it exists
        sys.exit(f"creating container {container}: {e.code} {e.read().decode(errors='replace')[:300]}")
