"""moto's server with one emulator gap closed for the upload benchmark: moto 5.2.5 reports an EBS direct snapshot
BlockSize of 512 (bytes) where AWS reports 524288. coldsnap trusts that number and would upload 1024 times as many
blocks; this provider always uses AWS's fixed 512 KiB. Everything else is stock moto."""
import sys

from moto.ebs import models

_original_init = models.EBSSnapshot.__init__


def _init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.block_size = 524288


models.EBSSnapshot.__init__ = _init

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
