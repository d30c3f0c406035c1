ALTER TABLE "scim_configs" ADD COLUMN "issuer_role" text DEFAULT 'admin' NOT NULL;--> statement-breakpoint
ALTER TABLE "scim_configs" ADD COLUMN "issuer_permissions" jsonb;--> statement-breakpoint
ALTER TABLE "scim_configs" ADD COLUMN "issued_by" jsonb;