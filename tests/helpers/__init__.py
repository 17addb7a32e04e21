"""Test helpers: model builders, the S3 server, the KFP launcher; no tests here."""
