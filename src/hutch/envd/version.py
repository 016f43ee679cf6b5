"""The envd protocol version reported to the control plane; the SDK gates features on it."""

VERSION = "0.9.1"
