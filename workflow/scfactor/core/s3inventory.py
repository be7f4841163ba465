"""One listing of the run's storage prefix instead of requests file by file (runs on S3 storage).

Before its first job Snakemake asks the storage plugin whether every file of the DAG exists and when it was
modified. snakemake-storage-plugin-s3 (0.3.6) lists only the folder of the first file it is asked about;
every other file then costs a HEAD request, and a missing one (every output of a fresh run) two more
(bucket, folder listing): thousands of requests for the paper DAG, hours on a real store at scale. `install`
makes the plugin list the run's whole prefix once (one request per 1000 objects) and tells Snakemake that
this inventory is complete, so a file absent from it is missing without a request. Folders (``directory()``
outputs) exist when an object lies below them; their time is their newest object's, as in the plugin.

Switched off with ``SCFACTOR_S3_INVENTORY=0`` (the plugin's own behaviour; for comparison, see
benchmarks/cluster/storage_requests.py).
"""

from __future__ import annotations

import os
import posixpath


def _ancestors(key: str, root: str):
    """``key``'s folders below ``root`` (not ``root`` itself), innermost first."""
    parent = posixpath.dirname(key)
    while parent.startswith(root + "/"):
        yield parent
        parent = posixpath.dirname(parent)


def install(prefix: str) -> bool:
    """Give the S3 plugin's objects below ``prefix`` (``s3://bucket/run``) a one-listing inventory; returns
    whether it was installed (not with ``SCFACTOR_S3_INVENTORY=0`` or a prefix without a key)."""
    if os.environ.get("SCFACTOR_S3_INVENTORY", "1") == "0":
        return False
    bucket, _, root = prefix.removeprefix("s3://").partition("/")
    root = root.strip("/")
    if not bucket or not root:
        return False
    from snakemake_interface_storage_plugins.io import Mtime
    from snakemake_storage_plugin_s3 import StorageObject

    plugin_parent, plugin_inventory = StorageObject.get_inventory_parent, StorageObject.inventory

    def below(obj) -> bool:
        return obj.bucket == bucket and obj.key.startswith(root + "/")

    def get_inventory_parent(self):
        """The run's prefix for objects below it (their inventory is that prefix's listing)."""
        return self.cache_key(f"{bucket}/{root}") if below(self) else plugin_parent(self)

    async def inventory(self, cache):
        """List the run's prefix once: existence, time and size of every object and folder below it."""
        if not below(self):
            return await plugin_inventory(self, cache)
        parent = self.get_inventory_parent()
        if parent in cache.exists_in_storage.has_inventory:
            return
        folders = {}
        for obj in self.s3bucket().objects.filter(Prefix=root + "/"):
            if obj.key.endswith("/"):
                continue
            t = obj.last_modified.timestamp()
            key = self.cache_key(self._local_suffix_from_key(obj.key))
            cache.mtime[key] = Mtime(storage=t)
            cache.size[key] = obj.size
            cache.exists_in_storage[key] = True
            for folder in _ancestors(obj.key, root):
                newest, size = folders.get(folder, (t, 0))
                folders[folder] = (max(newest, t), size + obj.size)
        for folder, (t, size) in folders.items():
            key = self.cache_key(self._local_suffix_from_key(folder))
            cache.mtime[key] = Mtime(storage=t)
            cache.size[key] = size
            cache.exists_in_storage[key] = True
        cache.exists_in_storage.has_inventory.add(parent)

    StorageObject.get_inventory_parent = get_inventory_parent
    StorageObject.inventory = inventory
    return True
