-- Sample databases for the compose stack (run once, on an empty data directory).
CREATE DATABASE shop;
CREATE DATABASE analytics;
\connect shop
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 1000) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers, amount numeric(10,2));
INSERT INTO orders (customer_id, amount) SELECT 1 + g % 1000, (g % 997) / 10.0 FROM generate_series(1, 20000) g;
\connect analytics
CREATE TABLE events (id bigint, kind text);
INSERT INTO events SELECT g, (ARRAY['view','click','buy'])[1 + g % 3] FROM generate_series(1, 50000) g;
