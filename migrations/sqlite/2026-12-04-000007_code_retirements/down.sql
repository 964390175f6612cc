DROP TABLE code_retirements;
