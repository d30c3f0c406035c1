ALTER TABLE "organizations" ADD COLUMN "seats_used" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
UPDATE "organizations" SET "seats_used" = (
  SELECT count(*) FROM "members" WHERE "members"."organization_id" = "organizations"."id" AND "members"."status" <> 'revoked'
);
