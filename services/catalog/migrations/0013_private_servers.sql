-- A model server on one of the deployment's allowed private networks is reached only when an admin key
-- attached it; the generator checks the address it connects to, every time. Servers attached before
-- this rule must be attached again by an admin key to reach a private network.
ALTER TABLE model_servers ADD COLUMN private_ok boolean NOT NULL DEFAULT false;
