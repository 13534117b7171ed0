"""Prometheus-shop conventions shared by every OptiLab service (exporter-toolkit's flags and files).

One place for each: ``flags`` (``--web.listen-address``, ``--web.config.file``, ``--log.level``,
``--log.format``, ``--version``), ``webconfig`` (exporter-toolkit's web config YAML: TLS and bcrypt
basic auth), ``logs`` (logfmt / JSON), ``version`` and ``selfmetrics`` (``optilab_build_info``,
``process_*``), ``wsgi`` (``/-/healthy``, ``/-/ready``, ``/-/reload`` and basic auth in front of
any WSGI app). ``resources`` finds the data files the package ships (rules, dashboards, units).
"""
