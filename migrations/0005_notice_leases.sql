ALTER TABLE `pending_notices` ADD `next_attempt_at` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `pending_notices` ADD `attempts` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `pending_notices_due_idx` ON `pending_notices` (`next_attempt_at`);