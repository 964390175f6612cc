DROP TABLE secret_scanning_alerts;
