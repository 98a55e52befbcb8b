#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What the original VDSM httpsisoboot hook does, for comparison: parse the
domain with minidom, move every boot order down one, add the https CD-ROM
with boot order 1, serialize, write. Run with the system interpreter."""
import os
import sys
from urllib.parse import urlsplit
from xml.dom import minidom


def main():
    path = os.environ["_hook_domxml"]
    url = urlsplit(os.environ["httpsisoboot"])
    with open(path, encoding="utf-8") as f:
        dom = minidom.parse(f)
    devices = dom.getElementsByTagName("devices")[0]
    for boot in devices.getElementsByTagName("boot"):
        if boot.hasAttribute("order"):
            boot.setAttribute("order", str(int(boot.getAttribute("order")) + 1))

    disk = dom.createElement("disk")
    disk.setAttribute("type", "network")
    disk.setAttribute("device", "cdrom")
    driver = dom.createElement("driver")
    driver.setAttribute("name", "qemu")
    driver.setAttribute("type", "raw")
    disk.appendChild(driver)
    source = dom.createElement("source")
    source.setAttribute("protocol", "https")
    source.setAttribute("name", url.path)
    host = dom.createElement("host")
    host.setAttribute("name", url.hostname)
    host.setAttribute("port", str(url.port or 443))
    source.appendChild(host)
    disk.appendChild(source)
    target = dom.createElement("target")
    target.setAttribute("dev", "hdc")
    target.setAttribute("bus", "ide")
    target.setAttribute("tray", "closed")
    disk.appendChild(target)
    disk.appendChild(dom.createElement("readonly"))
    boot = dom.createElement("boot")
    boot.setAttribute("order", "1")
    disk.appendChild(boot)
    devices.appendChild(disk)

    with open(path, "w", encoding="utf-8") as f:
        f.write(dom.toxml(encoding="utf-8").decode("utf-8"))


if __name__ == "__main__":
    sys.exit(main())
