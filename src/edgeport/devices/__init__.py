"""Devices: catalog (data files), transports (local, ssh, adb), the device agent, parsers."""
