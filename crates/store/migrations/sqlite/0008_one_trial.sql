-- A tenant gets one trial per SKU, whichever instance handles the request: the database refuses
-- a second one. (SKU ids are stored in the catalogue's spelling.)
-- Several instances of earlier versions could each start one: the earliest stays the trial, any
-- later one keeps its units and dates but counts as purchased, so no seat is lost.
UPDATE subscriptions SET kind = 'purchased'
WHERE kind = 'trial' AND EXISTS (
    SELECT 1 FROM subscriptions AS earlier
    WHERE earlier.tenant_id = subscriptions.tenant_id AND earlier.sku_id = subscriptions.sku_id
      AND earlier.kind = 'trial'
      AND (earlier.created_at < subscriptions.created_at
           OR (earlier.created_at = subscriptions.created_at AND earlier.id < subscriptions.id))
);
CREATE UNIQUE INDEX subscriptions_one_trial ON subscriptions (tenant_id, sku_id) WHERE kind = 'trial';
