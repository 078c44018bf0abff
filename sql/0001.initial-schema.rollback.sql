DROP TABLE admin_keys;
DROP TABLE delivery_logs;
DROP TABLE messages;
DROP TABLE routing_rules;
DROP TABLE esp_providers;
DROP TABLE accounts;
