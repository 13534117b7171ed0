"""Data files OptiLab ships, mapped here from the repository's top-level folders by setup.cfg's
``package_dir`` (alert_rules/, grafana/, deploy/): read them through :mod:`toolkit.resources`."""
