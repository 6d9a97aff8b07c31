ALTER TABLE `otp_codes` ADD `sent_to` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `otp_codes_sent_to_idx` ON `otp_codes` (`sent_to`,`purpose`);--> statement-breakpoint
ALTER TABLE `refresh_tokens` ADD `family_created_at` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `users` ADD `pending_email` text;--> statement-breakpoint
-- Backfill (hand-written): outstanding codes were mailed to the account's address of the time,
-- and a sign-in began with the oldest token of its family.
UPDATE `otp_codes` SET `sent_to` = (SELECT `email` FROM `users` WHERE `users`.`id` = `otp_codes`.`user_id`);--> statement-breakpoint
UPDATE `refresh_tokens` SET `family_created_at` = (SELECT MIN(r.`created_at`) FROM `refresh_tokens` r WHERE r.`family_id` = `refresh_tokens`.`family_id`);
