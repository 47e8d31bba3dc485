"""Uploads one file to venuebox with tuspy, the Python tus client.

Usage: tus_upload.py URL TOKEN FILE CREATOR
Prints the upload URL when done. Retries (resuming from the server's
offset) when the connection drops, as a phone on venue Wi-Fi would.
"""
import sys

from tusclient import client

url, token, path, creator = sys.argv[1:5]
tus = client.TusClient(url, headers={"Authorization": "Bearer " + token})
uploader = tus.uploader(
    path,
    chunk_size=1 << 20,
    retries=10,
    retry_delay=0.2,
    metadata={"filename": "proof.jpg", "filetype": "image/jpeg", "creator": creator, "consent": "true", "uploader": "tuspy"},
)
uploader.upload()
print(uploader.url)
