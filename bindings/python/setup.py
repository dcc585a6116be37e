"""Only what pyproject.toml cannot say: the package carries a native library
(libfieldreport.so, copied in by build.sh), so its wheel is platform-specific,
and building without that library is an error rather than a broken package."""

import os

from setuptools import setup
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.join(HERE, "src", "fieldreport")
LIBS = ("libfieldreport.so", "libfieldreport.dylib", "fieldreport.dll")


class BinaryDistribution(Distribution):
    """Tags the wheel for this platform and Python, not 'any'."""

    def has_ext_modules(self):
        return True


if not any(os.path.exists(os.path.join(PKG, name)) for name in LIBS):
    raise SystemExit(
        "fieldreport: no native library in src/fieldreport/ "
        "(run bindings/python/build.sh, which builds it with cargo and copies it in)"
    )

setup(distclass=BinaryDistribution)
