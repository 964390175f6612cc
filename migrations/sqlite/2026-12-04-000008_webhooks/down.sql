DROP TABLE expiry_notices;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
