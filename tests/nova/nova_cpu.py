"""Run in .venv-nova: Nova's own code turns ``--format nova`` files into guest ``<cpu>`` XML.

    nova_cpu.py URI VIRT_TYPE NOVA_CONF...

For each file: Nova's option definitions (``nova.conf.CONF``, oslo.config)
load it, a real ``LibvirtDriver`` connected to ``URI`` (the suite's private
libvirtd) runs ``_get_guest_cpu_model_config`` (which maps the model name
through libvirtd's ``getCPUModelNames`` and turns each extra flag into a
``<feature policy=...>``), and the ``<cpu>`` it returns is printed as JSON
``{file: xml}``. An option Nova rejects, or a model libvirt does not know,
is an exception here: exit 1 with Nova's message. Not imported by the suite
(Nova is not in its venv); ``tests/test_export_consumers.py`` runs it.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings


def main(argv: list[str]) -> int:
    uri, virt_type, *confs = argv
    warnings.simplefilter("ignore")  # eventlet's deprecation notice, on import
    nova_conf = importlib.import_module("nova.conf")
    driver = importlib.import_module("nova.virt.libvirt.driver")
    fake = importlib.import_module("nova.virt.fake")
    conf = nova_conf.CONF
    out = {}
    for path in confs:
        conf(["--config-file", path], project="nova", default_config_files=[])
        conf.set_override("connection_uri", uri, group="libvirt")
        conf.set_override("virt_type", virt_type, group="libvirt")
        drv = driver.LibvirtDriver(fake.FakeVirtAPI(), False)
        cpu = drv._get_guest_cpu_model_config(None, "x86_64")
        out[path] = cpu.to_xml()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
