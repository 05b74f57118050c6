"""DRA device metadata (KEP-5304): a JSON file per claim request, mounted into containers by CDI.

* :mod:`~dranet_core.metadata.reader`: find and parse the file inside a container (standard
  library only);
* :mod:`~dranet_core.metadata.document`: the file, its paths and its CDI spec as values;
* :mod:`~dranet_core.metadata.writer`: :class:`~dranet_core.metadata.writer.MetadataWriter`,
  what the driver calls at prepare, attach, detach, unprepare and start-up;
* :mod:`~dranet_core.metadata.standard`: the ``resource.kubernetes.io/pciBusID`` attribute.

Import the submodules; this package imports none of them, so the reader stays light.
"""
