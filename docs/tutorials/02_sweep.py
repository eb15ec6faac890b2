# %% [markdown]
# # 02_sweep

# %%
print(1 + 1)
