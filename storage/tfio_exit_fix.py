"""Let a process that used tensorflow-io's ``s3://`` file system exit with its own exit code.

tensorflow-io 0.35-0.37.1 (0.37.1 is the release for TF 2.16; there is no later one) aborts every
process that created an S3 client at exit: ``pure virtual method called``, exit 134
(tensorflow/io#1912, #2039). The cause, found upstream (tensorflow/io#2120, merged after the last
release): at exit, C++ static destructors run in an order where the AWS SDK's static log system
is destroyed before the S3 client's curl handle container, whose destructor then logs through the
dangling logger. A Kubeflow task, a Beam worker or ``embedpipe run`` that exits that way has
failed, whatever it did before.

The fix here removes the cause instead of hiding the exit code: at interpreter exit (Python's
``atexit`` runs before any C++ static destructor), it calls tensorflow-io's own
``AWSLogSystem::ShutdownAWSLogging()``, which sets the SDK's log system to null, exactly what the
plugin would do on an orderly shutdown. The static destructors then find no logger and run clean.
That function is not exported, so its address is read from the plugin's ELF symbol table (the
wheel ships one) and added to the address the plugin is loaded at (``/proc/self/maps``).
Measured: the same S3 write exits 134 without the hook and 0 with it (tests/test_object_storage.py).

If the symbol or the mapping cannot be found (another tensorflow-io build, another OS), the hook
does nothing and says so at exit; nothing is called at a guessed address.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import struct

PLUGIN_FILE = "libtensorflow_io_plugins.so"
SHUTDOWN_SYMBOL = b"_ZN10tensorflow2io2s316tf_s3_filesystem12AWSLogSystem18ShutdownAWSLoggingEv"

_installed = False


def elf_symbol_offset(path: str, name: bytes) -> int | None:
    """The value (offset from the load address) of symbol ``name`` in an ELF64 little-endian
    shared object's ``.symtab``, or None. Reads only the section headers, .strtab and .symtab."""
    import numpy as np

    with open(path, "rb") as f:  # a local shared library, mapped by the loader: not data or artifacts
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return None
        shoff, = struct.unpack_from("<Q", header, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", header, 0x3A)
        f.seek(shoff)
        sections = [struct.unpack_from("<IIQQQQIIQQ", f.read(shentsize)) for _ in range(shnum)]
        symtab = next((s for s in sections if s[1] == 2), None)  # SHT_SYMTAB
        if symtab is None:
            return None
        strtab = sections[symtab[6]]  # sh_link: the symbol table's string table
        f.seek(strtab[4])
        strings = f.read(strtab[5])
        f.seek(symtab[4])
        symbols = np.frombuffer(
            f.read(symtab[5]),
            dtype=np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"), ("value", "<u8"), ("size", "<u8")]),
        )
    start = strings.find(b"\0" + name + b"\0")
    if start < 0:
        return None
    match = symbols[(symbols["name"] == start + 1) & (symbols["info"] & 0xF == 2)]  # STT_FUNC
    return int(match["value"][0]) if len(match) else None


def _loaded_plugin() -> tuple[str, int] | None:
    """(path, load address) of the tensorflow-io plugin in this process, or None if not loaded."""
    try:
        with open("/proc/self/maps") as maps:  # the process's own memory map (Linux)
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fields[5].endswith("/" + PLUGIN_FILE) and int(fields[2], 16) == 0:
                    return fields[5], int(fields[0].split("-")[0], 16)
    except OSError:
        return None
    return None


def shutdown_aws_logging() -> bool:
    """Call tensorflow-io's ``AWSLogSystem::ShutdownAWSLogging()`` if the plugin is loaded; True if called."""
    loaded = _loaded_plugin()
    if loaded is None:
        return False
    path, base = loaded
    offset = elf_symbol_offset(path, SHUTDOWN_SYMBOL)
    if offset is None:
        logging.getLogger(__name__).warning(
            "%s has no symbol %s: cannot stop AWS logging before exit; a process that used s3:// may "
            "abort with 'pure virtual method called' (tensorflow/io#2039)", path, SHUTDOWN_SYMBOL.decode())
        return False
    ctypes.CFUNCTYPE(None)(base + offset)()
    return True


def install() -> None:
    """Register the exit hook once per process (cheap: nothing is read until exit)."""
    global _installed
    if not _installed:
        atexit.register(shutdown_aws_logging)
        _installed = True
