DROP INDEX `statuses_created_idx`;--> statement-breakpoint
ALTER TABLE `statuses` ADD `author_public` integer DEFAULT true NOT NULL;--> statement-breakpoint
-- Hand-written: the statuses already there take their author's state (isPublicAccount in src/store/statements.ts).
UPDATE `statuses` SET `author_public` = coalesce((SELECT `email_verified` AND `is_active` FROM `users` WHERE `users`.`id` = `statuses`.`user_id`), 0);--> statement-breakpoint
CREATE INDEX `statuses_public_created_idx` ON `statuses` (`author_public`,`created_at`,`id`);
