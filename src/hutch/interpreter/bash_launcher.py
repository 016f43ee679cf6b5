"""Starts bash_kernel, with pexpect's pause before each line it sends to bash taken out.

bash_kernel types every line of a cell into bash through pexpect, which waits 50 ms before each send (a
guard for terminals that drop fast input; bash reading its pty does not). That made a kernel start take
2 s (its setup is some forty lines) and a ten-line cell half a second. Run by path (``runpy``), so this
package is not put on the kernel's ``sys.path``.
"""

import pexpect
from bash_kernel.kernel import BashKernel
from ipykernel.kernelapp import IPKernelApp


class _Spawn(pexpect.spawn):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delaybeforesend = None


pexpect.spawn = _Spawn
IPKernelApp.launch_instance(kernel_class=BashKernel)
