ALTER TABLE "members" ADD COLUMN "user_name" text;--> statement-breakpoint
-- Members created or updated through SCIM kept the userName as sent in their profile, and their
-- email was that userName lower-cased: the userName moves to its own column (issue 9). Others keep
-- null and show their email as userName.
UPDATE "members" SET "user_name" = coalesce("profile" ->> 'userName', "email"), "profile" = "profile" - 'userName' WHERE "profile" IS NOT NULL AND jsonb_typeof("profile") = 'object';--> statement-breakpoint
CREATE UNIQUE INDEX "members_org_user_name_key" ON "members" USING btree ("organization_id",lower(coalesce("user_name", "email")));--> statement-breakpoint
CREATE INDEX "members_scim_emails_idx" ON "members" USING gin ((lower(("profile" -> 'emails')::text)::jsonb) jsonb_path_ops);
