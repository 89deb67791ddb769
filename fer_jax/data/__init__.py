"""The input: array_record records -> whole uint8 batches of this process's rows (grain).

    sources.py          open a split, work out the features a model's batches carry, check them
    record_features.py  how records store arrays (shared with the builders)
    decoding.py         serialized records -> NumPy arrays of the selected features
    train_batches.py    training batches, epoch after epoch, with a checkpointable iterator
    eval_batches.py     every example once, in padded fixed-size batches

Moving batches onto the devices (the mesh, global arrays, device prefetch) is `fer_jax.sharding`.
"""
