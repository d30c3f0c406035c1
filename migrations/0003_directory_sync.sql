CREATE TABLE "directory_configs" (
	"organization_id" uuid PRIMARY KEY NOT NULL,
	"config" jsonb NOT NULL,
	"bind_password_sealed" text NOT NULL,
	"schedule_cron" text,
	"schedule_interval_minutes" integer,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "directory_runs" (
	"id" uuid PRIMARY KEY NOT NULL,
	"organization_id" uuid NOT NULL,
	"status" text NOT NULL,
	"dry_run" boolean DEFAULT false NOT NULL,
	"trigger" text NOT NULL,
	"scheduled_for" timestamp with time zone,
	"created_at" timestamp with time zone NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"counts" jsonb,
	"progress" jsonb,
	"problems" jsonb,
	"changes" jsonb,
	"message" text,
	"failure" text,
	"lease_owner" text,
	"lease_expires_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "directory_configs" ADD CONSTRAINT "directory_configs_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "directory_runs" ADD CONSTRAINT "directory_runs_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "directory_runs_org_active_key" ON "directory_runs" USING btree ("organization_id") WHERE status in ('queued', 'running');--> statement-breakpoint
CREATE UNIQUE INDEX "directory_runs_org_slot_key" ON "directory_runs" USING btree ("organization_id","scheduled_for");--> statement-breakpoint
CREATE INDEX "directory_runs_org_created_idx" ON "directory_runs" USING btree ("organization_id","created_at");--> statement-breakpoint
CREATE INDEX "directory_runs_active_idx" ON "directory_runs" USING btree ("status") WHERE status in ('queued', 'running');