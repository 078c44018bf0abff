DROP TABLE ip_credentials;
