"""Network definitions, one file per family. Each file holds the network and nothing else."""

from superres.archs.rrdbnet import RRDBNet
from superres.archs.srresnet import SRResNet
from superres.archs.srvgg import SRVGGNetCompact

__all__ = ["RRDBNet", "SRResNet", "SRVGGNetCompact"]
