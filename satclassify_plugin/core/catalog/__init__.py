"""Sensor-neutral catalogue clients: the protocols, not the products.

* :mod:`.stac`  a STAC API through pystac-client (item dicts, any collection);
* :mod:`.odata` the Copernicus Data Space Ecosystem (CDSE) OData catalogue: OpenID token, paged product
  search (any collection), product download;
* :mod:`.dhus`  a Data Hub Software (DHuS) mirror through sentinelsat: OpenSearch query, product download.

Every request goes through a :class:`~satclassify_plugin.core.net.HttpClient` (deadlines, cancel, retries,
proxy); errors are :class:`~satclassify_plugin.core.contract.errors.SatClassifyError` saying what went wrong.
What a product *is* (bands, offsets, tiles) belongs to the sensor package using these clients
(``core/s2/sources``), so a Sentinel-1 or Landsat tool can reuse them. Imports point one way:
contract <- net <- catalog <- s2.
"""

from dataclasses import dataclass, field


@dataclass
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)

    def __bool__(self):
        return bool(self.username and self.password)
