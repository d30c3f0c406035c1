/** Branded ids: passing an organization id where a member id is expected is a compile error. */
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type ProviderId = Brand<string, 'ProviderId'>;
export type ProviderUserId = Brand<string, 'ProviderUserId'>;
export type OrganizationId = Brand<string, 'OrganizationId'>;
export type MemberId = Brand<string, 'MemberId'>;
export type GroupId = Brand<string, 'GroupId'>;
export type CollectionId = Brand<string, 'CollectionId'>;
export type UserId = Brand<string, 'UserId'>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` can be an id at all; anything else is answered as "not found" without a query. */
export const isId = (value: string): boolean => UUID.test(value);
