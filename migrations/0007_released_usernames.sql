CREATE TABLE `released_usernames` (
	`username` text PRIMARY KEY NOT NULL,
	`user_id` text,
	`released_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `released_usernames_released_idx` ON `released_usernames` (`released_at`);