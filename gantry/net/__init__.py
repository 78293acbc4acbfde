"""DICOM networking: query, retrieve, receive and send (pynetdicom), and DICOMweb.

Most users reach it through :class:`gantry.Session`: ``s.pull("dicom://AE@host:port",
query={...})``, ``s.export("dicom://AE@host:port")``, ``s.listen(dest, port=...)``,
and the ``gantry pacs`` / ``gantry listen`` commands. Every object moved is a row in
the session's ``transfers`` table. Needs ``pip install 'gantry[net]'``.

Examples
--------
>>> from gantry.net import Peer
>>> Peer.parse("dicom://ORTHANC@127.0.0.1:4242").called
'ORTHANC'
"""

from gantry.net._export import NetworkExportResult, export_to_peer
from gantry.net._listen import ListenResult, listen
from gantry.net._peer import TRANSFERS_TABLE, Peer, is_dicom_url, is_web_url, tls_context
from gantry.net._pull import PullResult, pull
from gantry.net._scu import echo, find
from gantry.net._send import SendItem, SendOutcome, send_files

__all__ = [
    "TRANSFERS_TABLE",
    "ListenResult",
    "NetworkExportResult",
    "Peer",
    "PullResult",
    "SendItem",
    "SendOutcome",
    "echo",
    "export_to_peer",
    "find",
    "is_dicom_url",
    "is_web_url",
    "listen",
    "pull",
    "send_files",
    "tls_context",
]
