/**
 * Minimal Reflect metadata API for `@peculiar/x509`.
 *
 * `@peculiar/x509` depends on `tsyringe`, which throws at import time unless a Reflect
 * metadata polyfill (`reflect-metadata`) is loaded. That package is not a dependency of
 * Wardgate, so this module installs the three functions `tsyringe` and `@peculiar/x509`
 * call (`defineMetadata`, `getMetadata`, `getOwnMetadata`). Import it before
 * `@peculiar/x509`. It leaves an existing polyfill untouched.
 *
 * NOTE: replace this file with `import 'reflect-metadata'` once that package is a dependency.
 */

type MetadataTarget = object;
type MetadataStore = Map<unknown, unknown>;

interface ReflectMetadataApi {
  defineMetadata?(key: unknown, value: unknown, target: MetadataTarget, property?: PropertyKey): void;
  getMetadata?(key: unknown, target: MetadataTarget, property?: PropertyKey): unknown;
  getOwnMetadata?(key: unknown, target: MetadataTarget, property?: PropertyKey): unknown;
}

const reflect = Reflect as typeof Reflect & ReflectMetadataApi;

if (typeof reflect.getMetadata !== 'function') {
  const stores = new WeakMap<MetadataTarget, Map<PropertyKey | undefined, MetadataStore>>();

  const storeOf = (target: MetadataTarget, property: PropertyKey | undefined, create: boolean): MetadataStore | undefined => {
    let byProperty = stores.get(target);
    if (byProperty === undefined) {
      if (!create) return undefined;
      byProperty = new Map();
      stores.set(target, byProperty);
    }

    let store = byProperty.get(property);
    if (store === undefined && create) {
      store = new Map();
      byProperty.set(property, store);
    }

    return store;
  };

  reflect.defineMetadata = (key, value, target, property) => {
    storeOf(target, property, true)!.set(key, value);
  };

  reflect.getOwnMetadata = (key, target, property) => storeOf(target, property, false)?.get(key);

  reflect.getMetadata = (key, target, property) => {
    for (let current: MetadataTarget | null = target; current !== null; current = Object.getPrototypeOf(current)) {
      const store = storeOf(current, property, false);
      if (store?.has(key)) return store.get(key);
    }

    return undefined;
  };
}

export {};
