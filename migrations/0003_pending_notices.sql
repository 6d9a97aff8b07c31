CREATE TABLE `pending_notices` (
	`id` text PRIMARY KEY NOT NULL,
	`message` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `pending_notices_created_idx` ON `pending_notices` (`created_at`);