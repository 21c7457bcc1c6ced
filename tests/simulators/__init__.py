"""Simulators of the WSO2 products the portal talks to, for the tests and the demo: real HTTPS servers on
127.0.0.1 that follow `reference/wso2-apis.md`, quirks included."""
